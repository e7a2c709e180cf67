# Night Market: one rainy evening, five shots.
# Modes used here: text-to-video, image-to-video (first frame), an element with a
# reference image, scene chaining, and editing a local video while keeping its sound.

project "Night Market" {
  target  = "inference/video-o1"
  quality = "std"
  aspect  = "16:9"
}

let style = "35mm film, neon reflections, light rain"

image market  "assets/market.jpg"
image lantern "assets/lantern.jpg"
video alley   "assets/alley.mp4"

element mei {
  frontal     = "assets/mei.png"
  refs        = ["assets/mei_side.png"]
  description = "a young woman in a yellow raincoat"
}

// Text to video: nothing but words.
scene establishing {
  prompt   = "Slow aerial shot over a crowded night market in the rain, {{ style }}"
  duration = 5
}

// Image to video: the market photo is the first frame.
scene arrival {
  start    = market
  prompt   = "The camera glides into the market as the stalls light up one by one, {{ style }}"
  duration = 5
}

// An element (mei) and a reference image (@lantern is added to the references).
scene mei_enters {
  prompt   = "@mei walks between the stalls and picks up @lantern, {{ style }}"
  duration = 5
}

// Chaining: starts exactly where the previous shot ends.
scene lanterns {
  start    = mei_enters.last_frame
  prompt   = """
    @mei lifts the paper lantern towards the sky.
    The camera tilts up with it, {{ style }}.
    """
  duration = 5
}

// Editing a local video. The live app's schema (v2) has no `keep_original_sound`;
// a scene that needs it targets "inference/video-o1@v1" and pins the app version that
// still speaks v1 (`app = "klingai/video-o1@VERSION"`, see docs/targets.md).
scene alley_rain {
  edit   = alley
  prompt = "Add heavy rain and glowing puddles to @alley, keep the camera move"
}

cut final = [establishing, arrival, mei_enters, lanterns, alley_rain]
