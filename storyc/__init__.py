"""storyc: a compiler and build system for AI video projects."""

__version__ = "0.1.0"
