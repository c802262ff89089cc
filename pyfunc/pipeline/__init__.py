"""The stage drivers: parallel jobs (--nj, --cmd), stamps, and stages 1-6 tying the layers together."""
