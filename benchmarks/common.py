"""Shared pieces of the benchmarks: synthetic documents of a given token length."""

from __future__ import annotations

import json
import random
from pathlib import Path

# Word pool for synthetic prose; frequencies roughly Zipfian so BPE merges look like English.
_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if more no "
    "out so said what up its about than into them can only other new some could time these two "
    "may then do first any my now such like our over man me even most made after also did many "
    "before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here between "
    "both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three river water city report market price patients "
    "study results treatment cells protein growth revenue quarter company shares bank rate policy "
    "court law season team players game data system model energy climate temperature research"
).split()


def synthetic_documents(n: int, words_per_doc: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(len(_WORDS))]
    docs = []
    for i in range(n):
        words = rng.choices(_WORDS, weights, k=words_per_doc)
        sentences, k = [], 0
        while k < len(words):
            step = rng.randint(8, 20)
            chunk = words[k : k + step]
            sentences.append(chunk[0].capitalize() + " " + " ".join(chunk[1:]) + ".")
            k += step
        paragraphs = [" ".join(sentences[j : j + 5]) for j in range(0, len(sentences), 5)]
        docs.append({"id": f"doc-{i:07d}", "text": "\n\n".join(paragraphs)})
    return docs


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def realistic_generation() -> str:
    """Five pairs of about 50 tokens in the synthesizer's format (free, options, CoT)."""
    return (
        "<QUE> What does the report say about the river water temperature this season? <ANS> It rose "
        "by two degrees compared with the same quarter of the previous year, which the study links to "
        "lower flow. </END>\n\n"
        "<QUE> Which factor did the company name for its revenue growth?\nOptions:\n- Higher prices\n"
        "- New markets\n- Lower costs <ANS> New markets </END>\n\n"
        "<QUE> How many patients completed the treatment in the study?\nLet's think step by step. <ANS> "
        "The study enrolled two hundred patients and reports that all but twelve completed it.\n"
        "Therefore, the answer is 188 </END>\n\n"
        "<QUE> Why did the bank change its policy rate? <ANS> To slow inflation after prices in the "
        "market rose for three quarters in a row. </END>\n\n"
        "<QUE> Who will play in the last game of the season? <ANS> The two teams with the most wins, "
        "whose players were named in the final paragraph. </END>"
    )


def mistral_v01_tokenizer():
    """Mistral-7B-v0.1's tokenizer (the synthesizer's), rebuilt offline, or None.

    The `mistral-common` wheel ships the original SentencePiece model
    (data/tokenizer.model.v1); with `sentencepiece` and `protobuf` installed it is
    converted to a `tokenizers` BPE with the legacy Llama normalizer, as the Hub's
    tokenizer.json for that model is. Install with: pip install 'instructpt[bench]'.
    """
    import importlib.util

    spec = importlib.util.find_spec("mistral_common")  # locate without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    model_file = Path(list(spec.submodule_search_locations)[0]) / "data" / "tokenizer.model.v1"
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
        from transformers.convert_slow_tokenizer import SentencePieceExtractor

        extracted = SentencePieceExtractor(str(model_file)).extract(None)
    except Exception:  # noqa: BLE001 - any missing piece means "not available"
        return None
    tok = Tokenizer(
        models.BPE(
            vocab=extracted["vocab"],
            merges=extracted["merges"],
            unk_token="<unk>",
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return tok
