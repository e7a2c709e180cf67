project "E230" {
  aspect = "16:9"
  target = "inference/video-o1@v1"
}

image door "assets/door.png"

scene wordy {
  refs     = [door]
  prompt   = "{{ 'a door in the fog, ' * 130 }}and then, slowly, @door"
  duration = 5
}
