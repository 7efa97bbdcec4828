"""The Hugging Face Hub's room: download.py (hf:USER/NAME names, downloads), card.py (the README.md in the Hub's
format that every model folder holds) and push.py (`textclf push`). Its modules stand on different stages, as
their readers do: data and model loading read hf: names, every saved model writes its card, push is a command."""
