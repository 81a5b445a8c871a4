fn main() {
    client::run();
}
