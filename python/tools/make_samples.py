"""Writes data/samples/*.json: small ORIGINAL dialogues written for this project (not taken from ExTES or
ESConv), in those datasets' schemas. Run: python python/tools/make_samples.py (from the repository root).

Dialogues are written out by hand below in a compact notation: "U: text" is the seeker, "XX: text" the
supporter using the strategy abbreviated XX.
"""

from __future__ import annotations

import json
from pathlib import Path

EXTES = {
    "RS": "Reflective Statements",
    "CL": "Clarification",
    "EV": "Emotional Validation",
    "ES": "Empathetic Statements",
    "AF": "Affirmation",
    "OH": "Offer Hope",
    "AJ": "Avoid Judgment And Criticism",
    "SO": "Suggest Options",
    "CP": "Collaborative Planning",
    "PD": "Provide Different Perspectives",
    "RN": "Reframe Negative Thoughts",
    "SI": "Share Information",
    "NE": "Normalize Experiences",
    "SC": "Promote Self-Care Practices",
    "SM": "Stress Management",
    "OT": "Others",
}

# (scene, description, turns)
EXTES_DIALOGUES: list[tuple[str, str, list[str]]] = [
    (
        "Work Stress",
        "The user has three deadlines landing in the same week and feels they are falling behind.",
        [
            "U: I have three reports due this Friday and I haven't finished any of them.",
            "EV: That is a lot to carry at once, and it makes sense that you feel stretched thin.",
            "U: My manager keeps adding things and I don't know how to say no.",
            "CL: When new tasks arrive, does your manager know what is already on your plate?",
            "U: Probably not. I just nod and take it.",
            "SO: One option is to send a short list of what you're working on and ask which item should move if the new one comes first.",
            "U: That feels a bit confrontational.",
            "PD: It can also read as being organised. Managers often appreciate knowing the trade-offs before a deadline slips.",
            "U: Okay, I could try that tomorrow morning.",
            "AF: That's a thoughtful step. Asking for priorities is a skill, not a weakness.",
        ],
    ),
    (
        "Work Stress",
        "The user was criticised in a team meeting and keeps replaying it.",
        [
            "U: My lead pointed out a mistake in my slides in front of everyone today.",
            "ES: Being corrected in front of the whole team can sting for hours afterwards.",
            "U: I keep replaying it. I think everyone thinks I'm careless now.",
            "RN: One error in one deck is a small part of what your colleagues have seen from you over time.",
            "U: I guess I have done good work before.",
            "RS: So part of you knows the mistake doesn't define you, even if the embarrassment is loud right now.",
            "U: Yeah. It's just loud.",
            "SM: When it gets loud, a few slow breaths or a short walk can turn the volume down enough to think.",
            "U: I might go for a walk after dinner.",
            "OH: That sounds good. Tomorrow the meeting will feel further away than it does tonight.",
        ],
    ),
    (
        "Work Stress",
        "The user works late every night and feels exhausted but guilty about resting.",
        [
            "U: I've been working until eleven most nights for a month.",
            "CL: Is that because of a particular project, or has it become the usual pace?",
            "U: It started with a launch but now it's just normal.",
            "EV: Running at that pace for a month would wear anyone down.",
            "U: But when I stop I feel guilty, like I'm letting people down.",
            "AJ: Needing rest isn't letting anyone down. You are a person, not a machine that failed.",
            "U: I know, but it doesn't feel that way.",
            "SC: Maybe start small: a fixed time to close the laptop two evenings a week, and something you enjoy after.",
            "U: Two evenings sounds doable.",
            "CP: Which two evenings would be easiest to protect this week?",
            "U: Tuesday and Thursday, there are fewer meetings.",
            "AF: Good choice. Protecting those evenings is a real commitment to yourself.",
        ],
    ),
    (
        "Breakup",
        "The user's partner of four years ended the relationship last week.",
        [
            "U: We broke up last week after four years together.",
            "ES: I'm so sorry. Four years is a big part of your life to suddenly rearrange.",
            "U: Everything in my flat reminds me of her.",
            "RS: It sounds like home itself has turned into a reminder of what you've lost.",
            "U: Exactly. I can't even cook in the kitchen without thinking about it.",
            "SO: Some people move a few things around or put certain items away for a while, just so the space feels a little more theirs again.",
            "U: Maybe I could box up some of the photos.",
            "NE: That's a common and healthy step. You're not erasing the past, just giving yourself room.",
            "U: Thanks. I needed to hear that.",
            "OH: The ache is sharp now, but it usually softens as new routines take hold.",
        ],
    ),
    (
        "Breakup",
        "The user was broken up with by text and wonders what they did wrong.",
        [
            "U: He ended things over a text message. No explanation.",
            "EV: Getting that news by text, with no reason, would leave anyone confused and hurt.",
            "U: I keep going through every conversation, trying to find what I did wrong.",
            "CL: Are you looking for something specific, or is it more that not knowing is hard to sit with?",
            "U: It's the not knowing. I'd rather have a reason.",
            "PD: Sometimes the lack of an explanation says more about how he handles hard conversations than about anything you did.",
            "U: I never thought of it that way.",
            "AF: You deserved a real conversation. Wanting one says you value honesty.",
        ],
    ),
    (
        "Breakup",
        "The user wants to text their ex again late at night.",
        [
            "U: It's 2am and I really want to text my ex.",
            "ES: Late nights can make missing someone feel almost unbearable.",
            "U: Part of me knows it won't help.",
            "RS: So there's a wiser part of you already weighing what tomorrow morning might feel like.",
            "U: Yeah, I'll probably regret it.",
            "SO: You could write the message in your notes app instead, and decide in the morning whether to send it.",
            "U: That's actually a good idea. I can get it out without sending it.",
            "SC: And if you can, try to rest after. A glass of water, lights off, something calm to listen to.",
            "U: I'll try. Thank you for being here.",
            "OT: I'm glad you reached out. Goodnight, and be gentle with yourself.",
        ],
    ),
    (
        "Exam Anxiety",
        "The user has final exams in two weeks and cannot focus while studying.",
        [
            "U: My finals start in two weeks and I can't focus at all.",
            "CL: What happens when you sit down to study?",
            "U: I read a page and then realise I didn't take in a single word.",
            "NE: That happens to a lot of students when the pressure builds. Anxiety crowds out concentration.",
            "U: So it's not that I'm stupid?",
            "RN: Not at all. A worried mind is a busy mind, not an incapable one.",
            "U: Okay. But I still need to get through the material.",
            "SM: Short blocks can help: twenty-five minutes of study, five minutes of break, and a quick note of what you covered.",
            "U: I've heard of that but never tried it.",
            "CP: Would you like to pick one subject to try it with tomorrow?",
            "U: Statistics, it's the one I'm most behind on.",
            "OH: Starting with the hardest one takes courage, and every short block will add up.",
        ],
    ),
    (
        "Exam Anxiety",
        "The user failed a mock exam and fears failing the real one.",
        [
            "U: I failed my mock exam. Now I'm sure I'll fail the real thing.",
            "EV: A result like that is discouraging, especially when the real exam feels so close.",
            "U: Everyone else passed.",
            "AJ: Comparing yourself with everyone else is very human, but it doesn't tell you much about what you can still do.",
            "U: I just feel behind.",
            "SI: Mock exams are designed partly to show where the gaps are. Many students use them as a map for what to revise.",
            "U: I did lose most marks on one topic.",
            "RS: So the mock already pointed you to the topic that needs your attention.",
            "U: When you put it like that it feels less hopeless.",
            "AF: You're already turning a setback into a plan. That's exactly what helps.",
        ],
    ),
    (
        "Exam Anxiety",
        "The user panics during exams and goes blank.",
        [
            "U: In exams my mind just goes blank. I know the answers at home.",
            "ES: That must be so frustrating, to know the material and feel it vanish under pressure.",
            "U: It is. Last time I sat there for ten minutes without writing.",
            "SI: Going blank is a stress response. When the body is on alert, recall gets harder for a while.",
            "U: Is there anything that helps?",
            "SM: Slow breathing, with the out-breath longer than the in-breath, can calm that alert quickly. You can do it at your desk without anyone noticing.",
            "U: I could practise that before the exam.",
            "SO: You might also start with a question you feel sure about, to warm up your memory.",
            "U: I always start with question one, even if it's hard.",
            "PD: There's no rule that says you must. Choosing your own order is a legitimate strategy.",
            "U: I'll try both things in my next practice paper.",
            "OH: With practice, the calm will become easier to reach when you need it.",
        ],
    ),
    (
        "Grief",
        "The user's grandmother died a month ago and they feel numb.",
        [
            "U: My grandmother passed away a month ago. I was raised by her, mostly.",
            "ES: I'm so sorry. Losing someone who raised you is losing a part of home.",
            "U: The strange thing is that I don't cry. I just feel numb.",
            "NE: Numbness is a very common part of grief, especially early on. It can be the mind's way of pacing the pain.",
            "U: I thought something was wrong with me.",
            "AJ: There is no correct way to grieve. Nothing about how you feel makes you a bad grandchild.",
            "U: I miss her cooking on Sundays.",
            "RS: Sundays sound like they were your time together.",
            "U: They were. She made soup every week.",
            "SO: Some people find comfort in keeping a tradition alive, like making her soup yourself one Sunday.",
            "U: I don't know if I can yet.",
            "EV: That's okay. You can wait until it feels right, and it's fine if that's not soon.",
        ],
    ),
    (
        "Grief",
        "The user's dog died suddenly and friends don't seem to understand.",
        [
            "U: My dog died on Tuesday. He was twelve.",
            "ES: I'm really sorry. Twelve years is a long friendship.",
            "U: My friends said 'it's just a dog, get another one.'",
            "EV: That must have hurt. Your grief is real, and he was family to you.",
            "U: He slept at the end of my bed every night.",
            "RS: So the evenings are probably when you notice his absence most.",
            "U: Yes. The house is so quiet.",
            "SC: It may help to plan something gentle for the evenings this week, like calling someone who knew him or going for a short walk on your usual route.",
            "U: Maybe I'll call my sister. She loved him too.",
            "AF: That sounds like a caring thing to do, for both of you.",
        ],
    ),
    (
        "Grief",
        "The user is approaching the first anniversary of their father's death.",
        [
            "U: Next week it will be a year since my dad died.",
            "CL: How are you feeling as the date gets closer?",
            "U: Anxious. I don't know what to do on the day.",
            "NE: Many people feel uneasy before an anniversary. The days leading up can be harder than the day itself.",
            "U: My mum wants a family lunch, but I'm not sure I want to be around people.",
            "PD: Maybe it doesn't have to be one or the other. You could join for part of the lunch and take time alone after.",
            "U: That could work.",
            "CP: Would it help to tell your mum ahead of time, so leaving early doesn't feel awkward?",
            "U: Yes, I'll tell her this weekend.",
            "OH: Whatever the day brings, you'll be honouring him in your own way.",
        ],
    ),
    (
        "Loneliness After Moving",
        "The user moved to a new city for a job and knows nobody there.",
        [
            "U: I moved here for work three months ago and I still don't know anyone.",
            "ES: Three months of evenings on your own can feel very long.",
            "U: At work everyone is nice, but they all have their own lives.",
            "NE: It's really common for the first months in a new city to feel lonely. Friendships take time to build from scratch.",
            "U: I used to have my whole group back home.",
            "RS: So you've gone from a full social life to starting over, and that's a big loss in itself.",
            "U: Yes, I didn't expect it to hit this hard.",
            "SO: Regular activities help, because you see the same faces every week. A climbing gym, a choir, a language exchange.",
            "U: I used to play volleyball.",
            "CP: Shall we look at how you might find a casual volleyball group near you this week?",
            "U: Sure, I'll search tonight.",
            "AF: That's a great first step. Reaching out in a new place takes courage.",
        ],
    ),
    (
        "Loneliness After Moving",
        "The user moved abroad with their partner and feels isolated without the language.",
        [
            "U: We moved abroad for my partner's job and I can't speak the language yet.",
            "EV: That's a lot of change at once, and it makes sense if you feel cut off.",
            "U: Even buying bread makes me nervous.",
            "RN: Every time you go and buy that bread, you are practising, even if it feels clumsy.",
            "U: I suppose that's true.",
            "SI: Many cities have free conversation groups for newcomers, often at libraries or community centres.",
            "U: I didn't know that. I'll check the library.",
            "OH: As the language comes, the city will slowly start to feel more like yours.",
        ],
    ),
    (
        "Loneliness After Moving",
        "The user moved for university and their roommate ignores them.",
        [
            "U: I started university and my roommate barely talks to me.",
            "CL: Is it that they're quiet in general, or do you feel they're avoiding you?",
            "U: I don't know. They're always on their headphones.",
            "PD: It could be shyness or homesickness on their side too, not something about you.",
            "U: I hadn't thought that they might be lonely as well.",
            "SO: You could invite them to something low-key, like grabbing food at the canteen.",
            "U: And if they say no?",
            "RN: Then you've learned something and lost very little. A no wouldn't mean you did anything wrong.",
            "U: True. I'll ask tomorrow.",
            "AF: That's a kind and brave thing to do.",
        ],
    ),
    (
        "Family Conflict",
        "The user argues constantly with their parents about career choices.",
        [
            "U: My parents want me to be a lawyer but I want to study design.",
            "ES: It's hard to feel pulled between your own path and the people you love.",
            "U: Every dinner ends in an argument.",
            "RS: So even ordinary family time has become tense.",
            "U: Yeah. I've started eating in my room.",
            "AJ: Wanting some distance when every meal turns into a fight is understandable.",
            "U: I just want them to listen.",
            "SO: Sometimes a calm, planned conversation goes better than arguing in the moment. You could show them a few design careers and what they pay.",
            "U: They do care a lot about stability.",
            "CP: Would it help to prepare what you want to say together, so it covers their worries too?",
            "U: Yes, that would help.",
            "OH: When they see you've thought it through, they may be more open than you expect.",
        ],
    ),
    (
        "Family Conflict",
        "The user's siblings disagree about care for their ageing mother.",
        [
            "U: My brother and I are fighting about who should look after our mum.",
            "CL: What is the disagreement mostly about: time, money, or where she should live?",
            "U: Time. I live closer, so everything falls on me.",
            "EV: Carrying most of the care alone can be exhausting and also lonely.",
            "U: And then he calls and criticises how I do it.",
            "ES: That must feel unfair after all you're doing.",
            "U: It really does.",
            "SI: Some families write down the weekly tasks and split them, including ones that can be done from a distance, like paperwork or calls.",
            "U: He could handle her bills and appointments online.",
            "SC: And please make sure some of the time you gain goes to you, not only to more tasks.",
            "U: I'll bring it up with him on Sunday.",
            "AF: You're standing up for both your mum and yourself. That matters.",
        ],
    ),
    (
        "Family Conflict",
        "The user feels their stepfather treats them differently from his own children.",
        [
            "U: My stepdad is much stricter with me than with his own kids.",
            "EV: Feeling treated differently at home can hurt a great deal.",
            "U: Last week they stayed out late and nothing happened. I was grounded for the same thing.",
            "RS: So the same situation led to very different consequences, and that felt unjust.",
            "U: Yes. And my mum doesn't say anything.",
            "CL: Have you been able to talk to your mum about it on her own?",
            "U: Not really. She's always busy.",
            "SO: You might ask her for a short time just the two of you, maybe on a walk, and share one concrete example.",
            "U: That seems less dramatic than a big talk.",
            "OH: Starting small can open the door to a bigger conversation later.",
        ],
    ),
    (
        "Health Worry",
        "The user is waiting for test results after a doctor's appointment.",
        [
            "U: I'm waiting for blood test results and I can't stop imagining the worst.",
            "EV: Waiting without knowing is one of the hardest kinds of stress.",
            "U: I keep searching my symptoms online.",
            "SI: Online searches tend to show the rarest and most serious cases first, which can make worry much bigger than the real risk.",
            "U: I know, but I can't help it.",
            "AJ: That's okay. Searching is a very common way of trying to feel in control.",
            "U: How do I stop?",
            "SM: You could set a single time each day for worrying, say fifteen minutes, and when the thoughts come outside it, note them for later.",
            "U: That sounds strange but I'll try.",
            "OH: The results will come, and whatever they say, you won't have to face the next steps alone.",
        ],
    ),
    (
        "Health Worry",
        "The user has chronic back pain and feels no one takes it seriously.",
        [
            "U: My back has hurt for eight months and doctors just tell me to rest.",
            "ES: Eight months of pain, and feeling dismissed on top of it, sounds really draining.",
            "U: Some days I can't sit at my desk.",
            "CL: Has anyone suggested seeing a specialist or a physiotherapist?",
            "U: No, just painkillers.",
            "SO: It could be worth asking your doctor directly for a referral, and bringing a short diary of when the pain is worst.",
            "U: A diary could show them it's real.",
            "AF: Your pain is real whether or not someone has measured it yet. Advocating for yourself is the right thing to do.",
            "U: I'll start the diary today.",
            "SC: And on bad days, gentle movement and breaks from sitting might help a little while you wait.",
        ],
    ),
    (
        "Health Worry",
        "The user had a panic attack and thought it was a heart attack.",
        [
            "U: Last night my heart was racing and I thought I was dying. The doctor said it was a panic attack.",
            "EV: That must have been terrifying, whatever the cause turned out to be.",
            "U: Now I'm scared it'll happen again.",
            "NE: Fear of another attack is very common after the first one. Many people go through exactly this.",
            "U: I feel weak for panicking.",
            "RN: A panic attack isn't weakness. It's your body's alarm going off at the wrong moment, and you got through it.",
            "U: I did get through it.",
            "SI: Panic attacks peak and pass, usually within minutes, even though they feel endless while they're happening.",
            "U: Knowing that helps a bit.",
            "SM: Next time, you could try naming five things you can see and four you can hear. It brings attention back to the room.",
            "U: I'll remember that.",
            "OH: With some practice and support, many people find the attacks become less frightening and less frequent.",
        ],
    ),
    (
        "Financial Stress",
        "The user lost their part-time job and worries about rent.",
        [
            "U: I lost my part-time job and rent is due in three weeks.",
            "EV: That's a frightening position to be in, with the date so close.",
            "U: I don't want to tell my landlord.",
            "CL: What worries you most about telling them?",
            "U: That they'll just tell me to leave.",
            "SI: Many landlords prefer hearing early and agreeing a short delay over an empty flat. There may also be local emergency funds for rent.",
            "U: I didn't know about the funds.",
            "CP: Could we list the places you could check this week, like the council website and your university's support office?",
            "U: Yes, that would make it feel less overwhelming.",
            "AF: You're already acting instead of freezing. That's a strength.",
        ],
    ),
    (
        "Financial Stress",
        "The user feels ashamed of their credit card debt.",
        [
            "U: I have a lot of credit card debt and I'm ashamed to tell anyone.",
            "AJ: Debt happens to many people for many reasons. It doesn't make you a bad or foolish person.",
            "U: My friends seem to have it all together.",
            "PD: People rarely talk about money, so what you see is often only the surface.",
            "U: Maybe.",
            "SO: Free debt advice services can help you see the whole picture and set up a plan to pay it down.",
            "U: I'm scared to even open the statements.",
            "SC: You could open them with someone you trust nearby, or with a cup of tea and a set time limit. Going gently still counts.",
            "U: That seems manageable.",
            "OH: Once it's on paper, it usually feels smaller than the fear of it.",
            "U: Thanks, I'll look tonight.",
            "OT: You're welcome. I'm here if you want to talk again after.",
        ],
    ),
    (
        "Friendship Conflict",
        "The user's best friend forgot their birthday.",
        [
            "U: My best friend forgot my birthday. Not even a message.",
            "ES: That hurts, especially from someone so close.",
            "U: I always remember hers.",
            "RS: So it feels like the care in the friendship isn't being returned right now.",
            "U: Exactly. Am I being petty?",
            "EV: No. Wanting to be remembered by someone you love is not petty at all.",
            "U: Should I say something?",
            "PD: It might help to find out if something is going on in her life. Sometimes forgetting is a sign someone is overwhelmed.",
            "U: She did start a new job recently.",
            "SO: You could tell her honestly that you missed hearing from her, and ask how she's doing.",
            "U: I'll message her tomorrow.",
            "AF: That's a generous way to handle it.",
        ],
    ),
    (
        "Friendship Conflict",
        "The user feels left out of a group chat their friends created.",
        [
            "U: I found out my friends made a group chat without me.",
            "EV: Discovering something like that can feel really isolating.",
            "U: I keep wondering what they say about me.",
            "RN: It's easy to fill the silence with the worst story. There may be a much simpler reason, like planning a surprise or a shared class.",
            "U: They are in a class together.",
            "CL: Is that the only group you spend time with?",
            "U: Mostly, yes.",
            "SO: It might be worth asking one of them, casually, and also making time for other people you enjoy.",
            "U: There's a girl from work I like talking to.",
            "SC: Investing in a few different friendships can make any one of them feel less high-stakes.",
            "U: That makes sense.",
            "OH: It sounds like you have more connections than the worry is letting you see.",
        ],
    ),
]

# ESConv schema: strategies per the ESConv paper's list.
ESCONV = {
    "Q": "Question",
    "RP": "Restatement or Paraphrasing",
    "RF": "Reflection of feelings",
    "SD": "Self-disclosure",
    "AR": "Affirmation and Reassurance",
    "PS": "Providing Suggestions",
    "IN": "Information",
    "OT": "Others",
}

# (emotion_type, problem_type, situation, turns)
ESCONV_DIALOGUES: list[tuple[str, str, str, list[str]]] = [
    (
        "anxiety",
        "job crisis",
        "I might be laid off next month and I have no savings.",
        [
            "OT: Hi, how are you feeling today?",
            "U: Not great. There are rumours of layoffs at my company.",
            "Q: How long have you been hearing these rumours?",
            "U: About two weeks. Nobody tells us anything.",
            "RF: It sounds like the uncertainty is making you really anxious.",
            "U: Yes, I can't sleep.",
            "PS: Maybe you could update your CV now, so you feel a bit more prepared either way.",
            "U: That's a good idea.",
            "AR: You're already thinking ahead, which is a real strength.",
        ],
    ),
    (
        "sadness",
        "breakup with partner",
        "My girlfriend left me for someone else.",
        [
            "U: My girlfriend left me for someone she met at work.",
            "RF: You must feel hurt and betrayed.",
            "U: I do. I thought we were happy.",
            "SD: I've been through something similar, and I remember how much it shook my confidence.",
            "U: That's exactly it. I feel not good enough.",
            "AR: Her choice doesn't measure your worth.",
            "U: Thanks.",
            "PS: Spending time with friends who value you might help remind you of that.",
        ],
    ),
    (
        "depression",
        "ongoing depression",
        "I've felt low for months and lost interest in everything.",
        [
            "U: I've felt low for months. Nothing seems fun anymore.",
            "RP: So things you used to enjoy don't bring you any joy lately.",
            "U: Right. Even music.",
            "Q: Have you been able to talk to a doctor about how you're feeling?",
            "U: No, I feel like they'd think I'm overreacting.",
            "IN: Losing interest in things for months is something doctors take seriously. It's a common reason people ask for help.",
            "U: Maybe I'll book an appointment.",
            "AR: That would be a brave and caring step for yourself.",
        ],
    ),
    (
        "anger",
        "problems with friends",
        "A friend shared something I told them in confidence.",
        [
            "U: A friend told others something private I shared with her.",
            "RF: You sound angry and let down.",
            "U: Very. I trusted her.",
            "Q: Have you told her how it made you feel?",
            "U: Not yet.",
            "PS: It may help to tell her calmly what happened and what you need from her in the future.",
            "U: I'll think about it.",
            "OT: Take your time. You don't have to decide today.",
        ],
    ),
    (
        "fear",
        "academic pressure",
        "I'm afraid of disappointing my parents with my grades.",
        [
            "U: My grades dropped and I'm scared to tell my parents.",
            "Q: What do you think they will say?",
            "U: That I'm wasting their money.",
            "RP: So you're worried they will see the drop as you not trying.",
            "U: Yes, but I really am trying.",
            "SD: I also struggled at university once, and telling my parents was easier than I expected.",
            "U: Really?",
            "PS: You could share a plan with them, like meeting a tutor, so the conversation is about next steps.",
            "AR: You clearly care about doing well.",
        ],
    ),
    (
        "shame",
        "job crisis",
        "I made a costly mistake at work and my boss was furious.",
        [
            "U: I made a mistake that cost my company money.",
            "RF: You seem to feel ashamed and worried.",
            "U: I am. My boss shouted at me.",
            "IN: Most people make a serious mistake at work at some point; what usually matters most is how they respond.",
            "U: I did fix part of it.",
            "AR: That shows responsibility.",
            "U: I hope he sees that.",
            "PS: You could write a short note on what happened and how you'd prevent it next time.",
        ],
    ),
    (
        "sadness",
        "loneliness",
        "I work from home and go days without talking to anyone.",
        [
            "U: I work from home and sometimes I don't speak to anyone for days.",
            "RF: That sounds very lonely.",
            "U: It is. I didn't notice at first.",
            "Q: Are there people you used to see more often?",
            "U: A couple of old colleagues.",
            "PS: Maybe arrange a regular coffee with one of them, even online.",
            "U: I could message one this week.",
            "AR: That's a great idea.",
        ],
    ),
    (
        "anxiety",
        "health problems",
        "I have a surgery scheduled and I'm nervous.",
        [
            "U: I have knee surgery next week and I'm really nervous.",
            "RF: It's natural to feel nervous before surgery.",
            "U: I've never had an operation before.",
            "IN: It might help to ask the hospital for a pre-operation talk; they usually explain each step so nothing is a surprise.",
            "U: I didn't know they did that.",
            "Q: Will someone be with you on the day?",
            "U: My brother is driving me.",
            "AR: It's good that you have support.",
            "OT: I hope the surgery goes smoothly.",
        ],
    ),
]


# The strategy names of ESConv's first annotation round, as its release file FailedESConv.json has them
# (python/peftshim/dialogues.py maps them onto ESConv's eight: ESCONV_OLDER_STRATEGIES).
ESCONV_RELEASE = {
    "Qs": "Questions",
    "Q": "Question",
    "Re": "Restatement",
    "RP": "Restatement or Paraphrasing",
    "RF": "Reflection of feelings",
    "SD": "Self-disclosure",
    "AR": "Affirmation and Reassurance",
    "ApR": "Approval and Reassurance",
    "PS": "Providing Suggestions",
    "DG": "Direct Guidance",
    "IN": "Information",
    "Ot": "Other",
}

# The release file's layout: "speaker" is the seeker ("U: text", or "U3: text" with the per-turn feedback
# rating 3 that the release puts on some seeker turns), "listener" the supporter. Consecutive turns of
# one speaker and a listener opening the conversation are as common there as here.
ESCONV_RELEASE_DIALOGUES: list[tuple[str, str, str, list[str]]] = [
    (
        "anxiety",
        "academic pressure",
        "My thesis is due in three weeks and I have barely started writing.",
        [
            "Qs: Hello, what brings you here today?",
            "U: Hi.",
            "U: I have a thesis due soon and I'm panicking.",
            "Re: Your thesis deadline is close and it's making you panic.",
            "U4: Yes. I keep opening the file and closing it again.",
            "RF: That sounds exhausting, being stuck between wanting to start and dreading it.",
            "U: It is.",
            "SD: When I wrote my own thesis I avoided it for a month, so I know that feeling.",
            "DG: Write one paragraph today, just one, and stop there.",
            "U5: One paragraph I can do.",
            "ApR: That's a great first step, and you can build on it tomorrow.",
            "Ot: Take care.",
        ],
    ),
    (
        "sadness",
        "problems with friends",
        "My oldest friend stopped answering my messages.",
        [
            "U: My best friend has been ignoring me for weeks.",
            "Q: Did something happen between you before she went quiet?",
            "U3: Not that I know of. We were fine at her birthday.",
            "RP: So everything seemed normal, and then the silence came without a reason you can see.",
            "U: Exactly, that's what hurts.",
            "IN: Sometimes people withdraw because of their own troubles, not because of the friendship.",
            "PS: You could send her a short note saying you miss her, without asking for an explanation.",
            "U4: Maybe I will. Thank you.",
            "AR: You clearly care about her, and that comes through.",
        ],
    ),
    (
        "fear",
        "job crisis",
        "I have a performance review on Friday and I think I will be let go.",
        [
            "Ot: Hi there!",
            "Qs: How are you feeling today?",
            "U: Scared. My review is on Friday and my manager has been cold with me.",
            "RF: You sound really worried about what Friday will bring.",
            "U2: I am. I can't sleep.",
            "Qs: What do you think your manager is unhappy about?",
            "U: I missed two deadlines last month.",
            "IN: Reviews usually look at the whole year, not only at the last month.",
            "DG: List what you finished this year and bring it with you.",
            "U5: That's a good idea, I had forgotten half of it.",
        ],
    ),
    (
        "depression",
        "ongoing depression",
        "Everything feels flat since the winter started.",
        [
            "U: I don't enjoy anything anymore.",
            "U: Even the things I used to love.",
            "RF: It sounds like the colour has drained out of your days.",
            "U3: That's a good way to put it.",
            "Qs: How long have you been feeling this way?",
            "U: Since November, more or less.",
            "ApR: It took courage to say that out loud.",
            "PS: Talking to a doctor about it could help; what you describe is something they see often.",
            "U4: I'll think about it.",
        ],
    ),
]


def esconv_release_record(emotion: str, problem: str, situation: str, lines: list[str]) -> dict:
    dialog = []
    for line in lines:
        tag, text = line.split(": ", 1)
        if tag.startswith("U"):
            annotation = {"feedback": tag[1:]} if tag[1:] else {}
            dialog.append({"speaker": "speaker", "annotation": annotation, "content": text + "\n"})
        else:
            dialog.append({"speaker": "listener", "annotation": {"strategy": ESCONV_RELEASE[tag]}, "content": text})
    return {
        "experience_type": "Current Experience",
        "emotion_type": emotion,
        "problem_type": problem,
        "situation": situation,
        "survey_score": {"seeker": {"initial_emotion_intensity": "4", "empathy": "4", "relevance": "4",
                                    "final_emotion_intensity": "2"}, "supporter": {}},
        "dialog": dialog,
    }


def extes_record(scene: str, description: str, lines: list[str]) -> dict:
    content = []
    for line in lines:
        tag, text = line.split(": ", 1)
        content.append({"User": text} if tag == "U" else {"AI": text, "AI Strategy": EXTES[tag]})
    return {"scene": scene, "description": description, "content": content}


def esconv_record(emotion: str, problem: str, situation: str, lines: list[str]) -> dict:
    dialog = []
    for line in lines:
        tag, text = line.split(": ", 1)
        if tag == "U":
            dialog.append({"speaker": "seeker", "content": text, "annotation": {}})
        else:
            dialog.append({"speaker": "supporter", "content": text, "annotation": {"strategy": ESCONV[tag]}})
    return {"emotion_type": emotion, "problem_type": problem, "situation": situation, "dialog": dialog}


def irregular_records() -> list:
    """Every irregularity read_dialogues repairs or skips; each record is commented with its reason."""
    return [
        # A clean dialogue, so the file has usable data.
        extes_record("Work Stress", "Deadlines keep piling up.", [
            "U: I can't keep up with my tasks.",
            "EV: That sounds overwhelming.",
            "U: It really is.",
            "SO: Could you ask which task matters most this week?",
        ]),
        # extra keys (record and turn), strategy spelled in lower case with odd spacing, key "AI strategy".
        {
            "scene": "Breakup", "description": "A recent breakup.", "id": 17, "source": "sample",
            "content": [
                {"User": "We split up last month.", "timestamp": "10:02"},
                {"AI": "I'm sorry, that's a painful change.", "AI strategy": "empathetic  statements"},
                {"User": "I miss him."},
                {"AI": "Missing him makes sense after so long together.", "AI Strategy": "emotional-validation"},
            ],
        },
        # both User and AI in one turn; a turn with neither; empty and off-list strategies.
        {
            "scene": "Exam Anxiety", "description": "Finals are close.",
            "content": [
                {"User": "My exams start Monday.", "AI": "That's soon. How are you feeling?", "AI Strategy": "Clarification"},
                {"note": "annotator comment"},
                {"User": "Nervous."},
                {"AI": "Nerves before exams are very common.", "AI Strategy": ""},
                {"User": "I guess."},
                {"AI": "Let's plan your revision together.", "AI Strategy": "Motivational Talk"},
            ],
        },
        # AI value a list, AI value a dict, User value a dict, AI turn without a strategy.
        {
            "scene": "Grief", "description": "The user's cat died.",
            "content": [
                {"User": {"text": "My cat died yesterday."}},
                {"AI": ["I'm so sorry.", "She was part of your family."], "AI Strategy": "Empathetic Statements"},
                {"User": "She was eighteen."},
                {"AI": {"text": "Eighteen years is a long life together."}, "AI Strategy": "Reflective Statements"},
                {"User": "Yes."},
                {"AI": "Take all the time you need."},
            ],
        },
        # consecutive turns of one speaker (merged); an AI value that cannot be used (number); an empty turn.
        {
            "scene": "Loneliness", "description": "New in town.",
            "content": [
                {"User": "I just moved here."},
                {"User": "I don't know anyone."},
                {"AI": 42, "AI Strategy": "Others"},
                {"AI": "   ", "AI Strategy": "Others"},
                {"AI": "Starting over in a new place is hard.", "AI Strategy": "Normalize Experiences"},
            ],
        },
        # records that are skipped whole: not an object, no content list, no reply after the user.
        "not a dialogue",
        {"scene": "Health Worry", "description": "No content list here."},
        {"scene": "Health Worry", "description": "Only the seeker speaks.", "content": [{"User": "Hello?"}]},
    ]


def main() -> None:
    root = Path(__file__).resolve().parents[2] / "data" / "samples"
    root.mkdir(parents=True, exist_ok=True)
    outputs = {
        "extes-sample.json": [extes_record(*d) for d in EXTES_DIALOGUES],
        "esconv-sample.json": [esconv_record(*d) for d in ESCONV_DIALOGUES],
        "esconv-release-sample.json": [esconv_release_record(*d) for d in ESCONV_RELEASE_DIALOGUES],
        "extes-irregular.json": irregular_records(),
    }
    for name, records in outputs.items():
        (root / name).write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {root / name} ({len(records)} records)")


if __name__ == "__main__":
    main()
