"""Head-parameter sequences: format readers/writers, retiming, expression-space mapping, range alignment."""
