"""Stage 1, synthesize: the wire format and its pair classification (`format`, `classify`), the
multi-round loop around an engine (`rounds`), and the stage that runs it over a corpus (`stage`, `ray`)."""
