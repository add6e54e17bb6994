"""The on-device dialogue model: SFT data from curated samples, LoRA fine-tune of the embedded
LLM, merged weights exported to GGUF (llama.cpp) and .pte (ExecuTorch)."""
