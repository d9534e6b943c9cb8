"""`redline adapters export`: a promoted adapter in the layout another runtime reads (vLLM, llama.cpp, Ollama)."""
