"""Stage 3, mix: recipes that blend augmented texts with general data, tokenization and packing
(`mix`), trainer output formats (`formats`), and the stage that runs it (`stage`)."""
