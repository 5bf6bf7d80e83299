"""Collections on disk (BEIR format, TFDS), their registry and their task instructions."""
