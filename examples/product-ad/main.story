# Product Ad: a vertical perfume spot in three shots.
# Modes used here: first + end frame, reference images, a feature reference video.

project "Product Ad" {
  quality = "std"
  aspect  = "9:16"
}

include "styles.story"

let product = "a frosted glass perfume bottle"

image closed "assets/bottle_closed.jpg"
image open   "assets/bottle_open.jpg"
image studio "assets/studio.jpg"
video orbit  "assets/orbit.mp4"

// First and end frame: from the closed bottle to the open one.
scene reveal : hero {
  start    = closed
  end      = open
  prompt   = "The cap of {{ product }} lifts off slowly, {{ light }}"
  duration = 5
}

// Reference image: the set the bottle stands in.
scene pedestal : studio_look {
  refs     = [studio]
  prompt   = "{{ product }} stands on the pedestal of @studio, slow dolly in, {{ light }}"
  duration = 5
}

// Feature reference video: borrow the camera orbit of @orbit.
scene spin : studio_look {
  video    = orbit
  prompt   = "The camera orbits {{ product }} exactly like the move in @orbit, {{ light }}"
  duration = 5
}

cut ad = [reveal, pedestal, spin]
