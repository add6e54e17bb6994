"""On-device exports: LiteRT (TFLite) conversion, quantization recipes, parity, release bundle."""
