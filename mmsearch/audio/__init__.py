"""Audio files: transcript sidecars, speech-to-text and shaping transcript segments for the text encoder."""
