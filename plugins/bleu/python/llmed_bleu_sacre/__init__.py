"""sacrebleu as a second reference of the bleu plugin (see llmed_bleu.sacrebleu_reference)."""

from llmed_bleu import sacrebleu_reference as reference  # noqa: F401
