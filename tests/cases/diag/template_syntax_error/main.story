let stages = ["evaporation", "condensation", "precipitation"]

scene intro {
  prompt = """
    A title card: "How rain forms".
    The stages appear one after another:
    {% for s in stages %}{{ s }}, {% endfo %}
    """
}

scene outro {
  prompt = "The end {{ stages[ }}"
}
