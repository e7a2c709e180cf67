include "../cast.story"
style noir { quality = "pro" }
