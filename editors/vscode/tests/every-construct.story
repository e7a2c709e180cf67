# SYNTAX TEST "source.story" "every construct of the .story language"
project "Night Market" {
# <------- storage.type.project.story
#       ^^^^^^^^^^^^^^ string.quoted.double.story
#                      ^ punctuation.section.block.story
  aspect  = "16:9"
# ^^^^^^ variable.other.property.story
#         ^ keyword.operator.assignment.story
  max_cost = 12.5
#            ^^^^ constant.numeric.story
  watermark = false
#             ^^^^^ constant.language.boolean.story
}

include "cast.story"
# <------- keyword.control.import.story
#       ^^^^^^^^^^^^ string.quoted.double.story

let style = "35mm film, \"neon\""
# <--- storage.type.let.story
#   ^^^^^ variable.other.constant.story
#                       ^^ constant.character.escape.story
let palette = { accent = "orange" }
#               ^^^^^^ variable.other.property.story

image market "assets/market.jpg"
# <----- storage.type.asset.story
#     ^^^^^^ entity.name.variable.asset.story
video alley = "assets/alley.mp4"
# <----- storage.type.asset.story
#     ^^^^^ entity.name.variable.asset.story

element mei {
# <------- storage.type.element.story
#       ^^^ entity.name.type.element.story
  refs = ["assets/mei_side.png", market]
#        ^ punctuation.section.brackets.story
#                                ^^^^^^ variable.other.story
}

style noir_wide : noir {
# <----- storage.type.style.story
#     ^^^^^^^^^ entity.name.type.style.story
#               ^ punctuation.separator.inheritance.story
#                 ^^^^ entity.other.inherited-class.story
  vars { look = "hard shadows" }
# ^^^^ variable.other.property.story
}

defaults { duration = 5 }
# <-------- storage.type.defaults.story

scene arrival : noir_wide {
# <----- storage.type.scene.story
#     ^^^^^^^ entity.name.function.scene.story
#               ^^^^^^^^^ entity.other.inherited-class.story
  start    = intro.last_frame
#            ^^^^^ variable.other.scene.story
#                 ^ punctuation.accessor.story
#                  ^^^^^^^^^^ support.function.frame.story
  refs     = [intro.frame(2.5)]
#                   ^^^^^ support.function.frame.story
#                         ^^^ constant.numeric.story
  prompt   = "@mei walks, {{ style }} mail me@example.com"
#             ^^^^ variable.other.mention.story
#                         ^^ punctuation.section.embedded.begin.story
#                            ^^^^^ variable.other.template.story
#                                             ^^^^^^^^ - variable.other.mention.story
  duration = -1 // a comment
#            ^^ constant.numeric.story
#               ^^^^^^^^^^^^ comment.line.double-slash.story
  /* a block
     comment */
# ^^^^^^^^^^^^ comment.block.story
  video = alley
# ^^^^^ variable.other.property.story
}

scene title {
  prompt = """
    {% for s in stages %}{{ loop.index }}. @mei {{ s }}{% endfor %}
#   ^^ punctuation.section.embedded.begin.story
#      ^^^ keyword.control.template.story
#                                          ^^^^ variable.other.mention.story
    {# a template comment #}
#   ^^^^^^^^^^^^^^^^^^^^^^^^ comment.block.template.story
    """
}

cut final = [arrival, title]
# <--- storage.type.cut.story
#   ^^^^^ entity.name.type.cut.story
#            ^^^^^^^ variable.other.story
