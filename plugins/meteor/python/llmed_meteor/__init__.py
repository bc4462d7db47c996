"""Reference of the meteor plugin: nltk 3.10.4's meteor_score with WordNet 3.0 read from Debian's
database files (wordnet-base + wordnet-sense-index in /usr/share/wordnet). nltk's reader also wants a
``lexnames`` file that Debian does not ship; it is generated here from WordNet 3.0's fixed list of
lexicographer files (lexnames(5WN)) and copied with the database into a temporary nltk_data folder
(see wordnet_reader), leaving /usr/share untouched."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from llmed.text_tokenise import as_reference_lists, tokenise

DEBIAN_PACKAGES = "wordnet-base wordnet-sense-index"
NEEDED = [f"{k}.{p}" for k in ("index", "data") for p in ("noun", "verb", "adj", "adv")] + [f"{p}.exc" for p in ("noun", "verb", "adj", "adv")] + ["index.sense"]

# WordNet 3.0's 45 lexicographer files in number order (lexnames(5WN)); the syntactic category is
# 1 noun, 2 verb, 3 adjective, 4 adverb.
_LEXFILES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object noun.person "
    "noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXFILES))


def missing_wordnet(folder: str) -> str | None:
    absent = [f for f in NEEDED if not (Path(folder) / f).exists()]
    if absent:
        return f"WordNet files missing in {folder} ({', '.join(absent[:3])}...): apt-get install {DEBIAN_PACKAGES}"
    return None


@functools.lru_cache(maxsize=4)
def wordnet_reader(folder: str):
    """nltk's WordNet reader on the database in `folder`.

    nltk 3.10 reads corpora only under nltk.data.path (its path sandbox, which also refuses links that
    leave the corpus folder), and its reader maps every WordNet against the corpus named "wordnet" on that
    path (reading its index.sense). So the files are copied, with a generated lexnames, to
    <tmp>/llmed-nltk-data-<hash>/corpora/wordnet, that root is put on nltk.data.path, and the reader is
    opened there: the mapping then reads the same files. One copy per source folder, reused later.
    """
    import hashlib
    import shutil

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    src = Path(folder).resolve()
    data_root = Path(tempfile.gettempdir()) / f"llmed-nltk-data-{hashlib.sha256(str(src).encode()).hexdigest()[:12]}"
    corpus = data_root / "corpora" / "wordnet"
    if not (corpus / "lexnames").exists():
        part = Path(tempfile.mkdtemp(prefix="llmed-wordnet-part-"))
        for f in src.iterdir():
            if f.is_file():
                shutil.copyfile(f, part / f.name)
        if not (part / "lexnames").exists():
            (part / "lexnames").write_text(lexnames_text())
        corpus.parent.mkdir(parents=True, exist_ok=True)
        try:
            part.rename(corpus)
        except OSError:  # another process finished first
            shutil.rmtree(part, ignore_errors=True)
    if str(data_root) not in nltk.data.path:
        nltk.data.path.insert(0, str(data_root))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": English only here
        return WordNetCorpusReader(str(corpus), None)


def missing(options: dict) -> str | None:
    """Why the reference cannot run on this machine (no WordNet database at ``options["wordnet"]``), or None.
    The registry walks skip with this reason instead of failing on a missing system package."""
    return missing_wordnet(options["wordnet"])


def reference(options: dict, inputs: dict) -> dict[str, float]:
    from nltk.translate.meteor_score import meteor_score

    why = missing(options)
    if why:
        raise FileNotFoundError(why)
    wn = wordnet_reader(options["wordnet"])
    how = options["tokenise"]
    scores = [
        meteor_score([tokenise(r, how) for r in refs], tokenise(cand, how), wordnet=wn, alpha=options["alpha"], beta=options["beta"], gamma=options["gamma"])
        for cand, refs in zip(inputs["candidates"], as_reference_lists(inputs["references"]))
    ]
    return {"meteor": sum(scores) / len(scores), "value": sum(scores) / len(scores), **{f"sample-{i}": v for i, v in enumerate(scores)}}
