project "E202" { aspect = "16:9" }

image a "assets/door.png"
image b "assets/sky.png"
image c "assets/door.png"
image d "assets/sky.png"
image e "assets/door.png"
image f "assets/sky.png"
image g "assets/door.png"

element mei { frontal = "assets/mei.png" }

scene crowd {
  refs     = [a, b, c, d, e, f, g]
  elements = [mei]
  prompt   = "@mei among @a @b @c @d @e @f @g"
  duration = 5
}
