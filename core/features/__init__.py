"""Features on disk: `store` (FeatureKey, FeatureStore, ResultCache, atomic writes), `extract` (batched multi-layer extraction)."""
