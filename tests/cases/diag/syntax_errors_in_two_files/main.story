include "cast.story"
include "places.story"

scene arrival { prompt = "@mei arrives" }
