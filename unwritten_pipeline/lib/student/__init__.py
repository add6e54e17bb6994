"""The on-device student: pruned WordPiece vocabulary, static embeddings, MLP heads, INT4 QAT."""
