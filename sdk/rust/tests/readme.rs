//! The README's SDK app is `examples/shop.rs`, which compiles and runs:
//! the two say the same.

#[test]
fn the_readme_app_is_the_example() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme
        .find("## Writing another component")
        .expect("the section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let end = start + section[start..].find("```\n").expect("its end");
    let example = include_str!("../examples/shop.rs");
    let begin =
        example.find("// README begin\n").expect("begin marker") + "// README begin\n".len();
    let stop = example.find("// README end").expect("end marker");
    assert_eq!(&section[start..end], &example[begin..stop]);
}

#[path = "../examples/shop.rs"]
mod shop;

#[test]
fn the_readme_app_answers_as_documented() {
    shop::main();
}
