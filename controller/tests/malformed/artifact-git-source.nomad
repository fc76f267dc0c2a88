job "web" {
  group "web" {
    task "web" {
      driver = "docker"
      config {
        image = "nginx"
      }
      artifact {
        source = "git::https://github.com/example/config"
      }
    }
  }
}
