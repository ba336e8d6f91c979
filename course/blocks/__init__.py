"""Reference building blocks, one file per topic; each a plain ``nn.Module`` readable in one screen."""
