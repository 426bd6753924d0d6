"""JP Eval generation tasks of the reference harness: JSQuAD, JAQKET v2, XLSum-ja, MGSM-ja."""
