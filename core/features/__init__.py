"""Features on disk: `store` (FeatureKey, FeatureStore, ResultCache, the in-process Memo) and `extract`."""
