"""Bait phrasing and comment features (leaderboard/bait/patterns.py): Facebook's 2017
engagement-bait categories, and what one comment's text says about it."""

from __future__ import annotations

import pytest

from leaderboard.bait.patterns import comment_features, phrasing

# ---------------------------------------------------------------------------------------------
# phrasing: Facebook's 2017 engagement-bait categories


@pytest.mark.parametrize(
    ("category", "text"),
    [
        # Facebook's own examples (newsroom, December 2017) first, then everyday variants
        ("vote", "Vote with reactions! 😍 for the panda, 😮 for the koala"),
        ("vote", "Tea or coffee? Comment below!"),
        ("vote", "Pizza or burgers? Vote in the comments 👇"),
        ("react", "LIKE if you're an Aries!"),
        ("react", "React with ❤️ if you love Mondays, 😡 if you hate them"),
        ("react", "Hit like if you love dogs 🐶"),
        ("share", "SHARE with 10 friends to win a ride on our plane!"),
        ("share", "Share this if you agree!"),
        ("share", "Share with all your friends before it's too late"),
        ("tag", "TAG a friend you want to go to Cabo with!"),
        ("tag", "Tag someone who needs to hear this today"),
        ("tag", "Tag 3 friends who would eat all of this"),
        ("comment", "COMMENT 'YES' if you love rock music!"),
        ("comment", "Type AMEN if you believe!"),
        ("comment", "Who else remembers these? 🙋"),
    ],
)
def test_phrasing_recognises_each_bait_category(category: str, text: str) -> None:
    assert category in phrasing(text)


@pytest.mark.parametrize(
    "text",
    [
        "What do you think about the new policy?",
        "Thanks everyone for coming",
        "CERN announces the observation of a new particle consistent with the Higgs boson",
        "Breaking: earthquake of magnitude 6.1 hits the coast, no tsunami warning issued.",
        "Parliament will vote on the bill next Tuesday.",
        "Apple or Samsung? Analysts compare the new flagships in our review.",
        "Reply to the survey by Friday, please.",
        "Who else is going to the conference next week?",
        # the following realistic sentences match a bait pattern (reported, left failing):
        "One or two people were injured in the accident, police say.",  # vote: "one or two"
        "The board will vote for a new chair next week.",  # vote: "vote for"
        "Slides from today's lecture are up. Comments and questions are welcome.",  # comment
        "Please write your name on the attendance sheet.",  # comment: "write your"
        "Reminder: tag your releases before publishing to PyPI.",  # tag: "tag your"
    ],
)
def test_phrasing_leaves_neutral_sentences_alone(text: str) -> None:
    assert phrasing(text) == []


@pytest.mark.parametrize(
    ("text", "promo", "answer"),
    [
        ("yes", False, True),
        ("Tea!", False, True),
        ("AMEN", False, True),
        ("check out my channel", True, False),
        ("subscribe to me for daily videos about everything", True, False),
        ("see www.example.com for more", True, False),
        ("I have a question about the second lemma in your proof", False, False),
        ("This is the best song ever, I listen to it every single day", False, False),
    ],
)
def test_comment_features_spot_promotion_and_answers(text: str, promo: bool, answer: bool) -> None:
    features = comment_features(text)
    assert (features[0], features[1]) == (promo, answer)


def test_near_duplicates_share_a_hash() -> None:
    def h(text: str) -> int:
        return comment_features(text)[-1]

    assert h("Check out my channel!!") == h("check out my CHANNEL")
    assert h("check out my channel") != h("check out my page")
