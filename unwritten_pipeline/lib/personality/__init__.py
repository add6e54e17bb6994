"""The PersonalityModel: token vocabulary, embeddings, FuseChat soft labels, pretraining."""
