"""Stage 2, templify: rendering entries into instruction-augmented texts (`render`) from the
template library (`templates`), and the stage that runs it over a synthesize output (`stage`)."""
