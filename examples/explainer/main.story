# Explainer: how rain forms, in three animated shots driven by template variables.
# Shows: a loop and a conditional in prompts, defaults and styles, a reference image,
# another scene's frame as a reference, and ending on another scene's first frame.

project "How Rain Forms" {
  quality = "std"
  aspect  = "16:9"
}

let stages  = ["evaporation", "condensation", "precipitation"]
let palette = { background = "pale blue", accent = "orange" }

image diagram "assets/diagram.png"

defaults {
  duration = 5
}

style flat {
  vars { look = "flat 2D motion graphics, clean lines" }
}

scene intro : flat {
  prompt = """
    {{ look }}: a title card reading "How rain forms" on a {{ palette.background }} background.
    The stages appear one after another:
    {% for s in stages %}{{ loop.index }}. {{ s }}{% if not loop.last %}, {% endif %}{% endfor %}.
    """
}

// A reference image plus a frame of another scene (2.5 s into `intro`).
scene cycle : flat {
  refs = [diagram, intro.frame(2.5)]
  vars { labelled = true }
  prompt = """
    {{ look }}: the water cycle drawn as in @diagram, in the colours of @intro,
    {% if labelled %}with {{ palette.accent }} arrows labelled {{ stages | join(", ") }}{% else %}with {{ palette.accent }} arrows{% endif %}.
    """
}

// Ends on the first frame of `intro`, so the explainer loops seamlessly.
scene outro : flat {
  start  = cycle.last_frame
  end    = intro.first_frame
  prompt = "{{ look }}: the diagram folds back into the title card"
}

cut explainer = [intro, cycle, outro]
