project "Motion" {
  aspect = "16:9"
}

video street "assets/street.mp4"
image lantern "assets/lantern.png"

scene follow {
  motion     = street
  refs       = [lantern]
  keep_sound = false
  prompt     = "A paper @lantern drifts down the road, the camera moving like @street"
  duration   = 4
}
