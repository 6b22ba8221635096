"""Image sets and what is done to images before an encoder sees them: loaders, the demo, input transforms, corruptions."""
