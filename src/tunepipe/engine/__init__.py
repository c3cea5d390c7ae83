"""In-process inference for Hugging Face causal LMs: one loaded base model serves many LoRA
adapters, concurrent requests share batched decode steps, and output honours the OpenAI request
surface (sampling, stops, logprobs, tools, JSON constraints)."""
