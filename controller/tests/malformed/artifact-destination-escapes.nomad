job "web" {
  group "web" {
    task "web" {
      driver = "docker"
      config {
        image = "nginx"
      }
      artifact {
        source      = "https://example.com/config.json"
        destination = "local/../../../etc"
      }
    }
  }
}
