"""The MODEL argument of the command line: factories, torch.export archives, TorchScript files."""

from .loaders import Loaded, is_scripted, load_model, model_files, parse_kwargs

__all__ = ["Loaded", "is_scripted", "load_model", "model_files", "parse_kwargs"]
