"""storyc.provider"""
