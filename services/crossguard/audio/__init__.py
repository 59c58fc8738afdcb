"""Audio safety classifier: VAD, Whisper, text models on transcripts, event tagger."""
