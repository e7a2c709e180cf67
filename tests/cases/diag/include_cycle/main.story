include "cast.story"
scene arrival { prompt = "@mei arrives" }
