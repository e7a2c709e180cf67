project "Takes" {
  aspect = "16:9"
  takes  = 2
}

let style = "35mm film, neon reflections, light rain"

scene alley {
  takes    = 3
  prompt   = "A cat crosses a narrow alley, {{ style }}"
  duration = 10
}

scene roof {
  prompt   = "Rooftops under the rain, {{ style | upper }}"
  duration = 5
}
