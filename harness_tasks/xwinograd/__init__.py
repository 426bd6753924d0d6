"""XWinograd-ja as the reference harness scores it: two empty-context log-likelihoods per pair."""
