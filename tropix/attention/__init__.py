"""Attention: dense reference, tropical limit, region-sparse, hierarchical and tensor-compressed attention."""
