"""nltk's Porter stems and METEOR synonym sets of words, to check the TypeScript stemmer and WordNet reader."""

from __future__ import annotations

from llmed_meteor import wordnet_reader


def reference(options: dict, inputs: dict) -> dict:
    from nltk.stem.porter import PorterStemmer

    wn = wordnet_reader(options["wordnet"])  # options filled from the meteor schema
    stem = PorterStemmer()
    words = inputs["words"]
    synonyms = [sorted({l.name() for s in wn.synsets(w) for l in s.lemmas() if "_" not in l.name()} | {w}) for w in words]
    return {"stems": [stem.stem(w) for w in words], "synonyms": synonyms}
