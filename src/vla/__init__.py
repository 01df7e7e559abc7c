"""vla: vision-language-action robot policies, from demonstrations to a served policy."""

__version__ = "0.1.0"
