# The cast, shared by every scene of the film (and by any sequel that includes it).

element ava {
  frontal     = "cast/ava.png"
  refs        = ["cast/ava_back.png"]
  description = "a courier in her thirties, short silver hair, orange jacket"
}

element robot {
  frontal     = "cast/robot.png"
  description = "a small rusty delivery robot with one round blue eye"
}
