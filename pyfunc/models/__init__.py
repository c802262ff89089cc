"""ECAPA-TDNN, the AAM-softmax head, model directories and checkpoints (ours and the seed's format)."""
