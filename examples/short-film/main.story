# The Last Delivery: a short film with a shared cast.
# Shows: elements from an included cast file, chained scenes, editing another scene's
# output (keeping its sound), borrowing another scene's motion, editing a local video.

project "The Last Delivery" {
  quality = "std"
  aspect  = "16:9"
}

include "cast.story"

let city = "a rain-soaked neon street at night"

video street "assets/street.mp4"

scene meet {
  prompt   = "@ava kneels to greet @robot in {{ city }}, handheld camera"
  duration = 5
}

// Chained: begins on the last frame of `meet`.
scene walk {
  start    = meet.last_frame
  prompt   = "@ava and @robot walk away together through {{ city }}"
  duration = 5
}

// Edits the output of `walk` itself.
scene walk_storm {
  edit   = walk
  prompt = "Turn @walk into a thunderstorm with lightning over the rooftops"
}

// Borrows the camera motion of `meet`'s output.
scene chase {
  motion   = meet
  prompt   = "@robot races through {{ city }}; the camera moves as in @meet"
  duration = 5
}

// Edits a local video.
scene street_rain {
  edit   = street
  prompt = "Add heavy rain and reflections to @street"
}

cut film = [meet, walk, walk_storm, chase, street_rain]
