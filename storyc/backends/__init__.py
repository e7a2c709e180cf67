"""storyc.backends"""
