from leadstream.cli import main

main()
