import os

# This machine has no route to the Hugging Face hub, and huggingface_hub reads HF_HUB_OFFLINE once,
# at import: set it before any test module (or conftest) imports it, so an unknown model fails at
# once instead of after network timeouts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
