let style = "35mm film, neon reflections"

scene arrival {
  prompt = "a night market at dusk, {{ stlye }}"
}

scene lanterns {
  vars { lens = "50mm" }
  prompt = """
    Paper lanterns sway in the wind.
    Shot on a {{ lense }} lens, {{ style }}.
    """
}
