"""Daily summaries: the built-in summarizer (pure, in `domain.daily`) and an optional LLM one."""
