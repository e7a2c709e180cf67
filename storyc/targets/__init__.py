"""storyc.targets"""
